"""``python -m a2a_cli`` (also what ``torchrun -m a2a_cli`` runs)."""
from .launch import main

main()
