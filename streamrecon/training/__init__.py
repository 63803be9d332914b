"""Training of the embedded model on synthetic shards (``streamrecon.training.synth``): the dataset
(``dataset``), the losses (``losses``) and the loop with checkpoints/resume (``loop``)."""
