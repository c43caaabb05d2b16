"""What this machine offers and what shopsearch will use on it (``shopsearch doctor``)."""
