"""The battery rack's policy between the cellbus driver and the cells kernel: string layout,
cell and board alarms, window summaries, balancing writes, recordings and their replay."""
