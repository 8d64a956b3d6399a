"""`python -m src.report`: what the runs of a grid did, as a folder with index.html and its PNGs.

collect.py reads the files runs leave (histories, result lines, the tuner's summary), figures.py
draws them with matplotlib, page.py writes the HTML, build.py puts the folder together.
"""
