"""One module per `python -m loadtest <command>`: run.py, predict.py, size.py, demo.py, canary.py
(hpa_options.py holds what predict and size share). Each defines configure(parser) and imports only what its
command needs; loadtest/__main__.py imports just the chosen one. Nothing in loadtest imports commands/.
"""
