"""``python -m anogen_data.cli`` (and ``accelerate launch -m anogen_data.cli``): the ``anogen-data`` CLI."""

from anogen_data.cli import main

if __name__ == "__main__":
    main()
