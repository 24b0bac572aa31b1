"""Dataset version writers: MVTec AD layout, COCO RLE, Hugging Face datasets, stats, card, manifest."""
