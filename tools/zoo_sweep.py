"""``mmal sweep`` as a script, for mmdet-style use (the code is in mmal/apps/sweep.py)."""
import signal
import sys

signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while importing ends quietly; run_tool handles it later

from mmal.apps.sweep import main

if __name__ == '__main__':
    sys.exit(main())
