"""The fault suite behind `make chaos`: surges with crashes, outages, bad input, bad credentials."""
