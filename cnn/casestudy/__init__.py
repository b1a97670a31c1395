"""The mammography case study (chapter "Case study: mammography").

``cnn.casestudy.synthetic`` draws seeded synthetic patches of the three CBIS-DDSM
classes, ``cnn.casestudy.cbis`` loads the real CBIS-DDSM data for readers who download
it, and ``cnn.casestudy.networks`` builds and trains the case study's networks. The
command line (``python -m cnn``) is built on them.
"""
