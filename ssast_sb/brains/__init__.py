"""SpeechBrain Brains for SSAST pretraining and fine-tuning."""
