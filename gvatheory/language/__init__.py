"""Language (notebook 10): synthetic languages with exact validity, a small transformer, and the LM experiment."""
