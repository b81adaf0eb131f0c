"""The `sweep` command line (`main`): parsing (`parser`), options and config files turned
into configs (`options`, `fields`), and the commands that are neither sweeps nor queries
(`doctor`, `demo`, `ui`). User errors become one line on stderr and exit code 2."""
