"""What the network does with what it never saw: open-set recognition, non-digit inputs, dream images."""
