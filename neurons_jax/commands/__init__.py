"""Sub-commands of the ``neurons-jax`` CLI, one module each (``add_arguments`` + ``run``)."""
