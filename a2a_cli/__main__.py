"""``python -m a2a_cli`` (also what ``torchrun -m a2a_cli`` runs)."""
from .cli import main

main()
