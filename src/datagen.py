"""Command line of the data generator (src/data/generator.py):
python -m src.datagen --scale {tiny,small,medium,full} --out DIR [--seed N] [--quiet]"""
from .data.generator import main

if __name__ == "__main__":
    main()
