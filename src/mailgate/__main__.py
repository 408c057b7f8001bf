"""``python -m mailgate`` runs the command line."""

from mailgate.launch import main

main()
