"""What the rows say: the learning-curve frontier (`frontier`, priced by `costs`), the
procedure of `sweep plan` (`plan`, with its pilots behind a `Runner`), the sweep's answer in
words (`summary`) and plots (`plots`). Free of Ray: it reads rows, it runs nothing."""
