"""The example-guided synthesis networks: feature pyramids, alignment, SPADE generator, discriminator."""
