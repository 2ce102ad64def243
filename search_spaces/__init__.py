"""Built-in search spaces; each module defines `build(hp, spec)` and maybe `STARTING_POINTS`."""
