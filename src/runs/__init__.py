"""Records of one run, below the experiment and the tuner that both write and read them: the
fingerprint of what made a run (fingerprint.py), the result lines of a config (results.py) and
the lock that keeps one writer per experiment or grid (lock.py)."""
