"""The IPython layer: the only code that imports IPython or ipywidgets."""
