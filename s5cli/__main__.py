"""`python -m s5cli` runs the `s5` command line."""

from s5cli.cli import main

if __name__ == "__main__":
    main()
