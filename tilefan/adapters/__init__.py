"""The ports' implementations, one folder per backend, and what every job store shares
(transition rules, record codecs) and every blob store reads (the ``.npy`` header, file formats)."""
