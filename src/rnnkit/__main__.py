"""`python -m rnnkit` (and `torchrun -m rnnkit`) runs the same CLI as the `rnnkit` command."""

from rnnkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
