"""`python -m nurture` is the `nurture` command."""

from nurture.cli import main

if __name__ == "__main__":  # not when a process of a split import starts
    main()
