"""Command line of the data checks (src/data/checks.py):
python -m src.validation --config C --expid ID [--splits train valid test]"""
from .data.checks import main

if __name__ == "__main__":
    main()
