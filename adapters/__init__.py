"""The fine-tune half: base models setup, training sets, LoRA training, the adapter registry,
generation backends (transformers, llama.cpp), and GGUF conversion / merge / quantize."""
