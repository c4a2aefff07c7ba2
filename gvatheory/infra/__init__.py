"""Infrastructure: the result cache, the notebook runner (make figures), the figure style, validation helpers."""
