"""The transfer-learning study: CNNs from scratch vs pretrained bases."""
