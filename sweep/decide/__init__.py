"""What the rows say: one landscape posterior (`posterior`: the measured landscapes of
`prior`, its misfit fitted by `misfit`, updated by the trials `evidence` names, priced by
`costs`) answers at every budget (`frontier`) and before spending (`plan`, its pilots behind
a `Runner`); the sweep's answer in words (`summary`) and plots (`plots`). Free of Ray: it
reads rows, it runs nothing."""
