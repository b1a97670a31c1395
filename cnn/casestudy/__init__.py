"""The mammography case study (chapter "Case study: mammography").

``cnn.casestudy.synthetic`` draws seeded synthetic patches of the three CBIS-DDSM
classes, ``cnn.casestudy.cbis`` loads the real CBIS-DDSM data for readers who download
it, ``cnn.casestudy.networks`` builds and trains the case study's networks, and
``cnn.casestudy.training`` runs a whole training (data, validation split, network, test
accuracy) as the command line (``python -m cnn``, ``cnn.cli``) does.
"""
