/// Models: safetensors weights and the style-transfer networks.
