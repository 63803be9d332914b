"""Training of the embedded model on synthetic shards (``streamrecon.synth``): the dataset
(``dataset``), the losses (``losses``) and the loop with checkpoints/resume (``loop``)."""
