"""Where defects go: foreground estimate, boxes, mask shapes (the layout of each synthetic sample)."""
