"""The loss-spikes replay: a CNN whose features pass max or average pooling, trained at a learning
rate high enough to spike, logged every few batches (the maxpool/avgpool story of "由dead relu引发的思考").

Modules as in the other replays: :mod:`.grid`, :mod:`.model`, :mod:`.train`,
:mod:`.results`, :mod:`.claims`, :mod:`.summary`; the images are the deep-stack
replay's. Importing it does not import TensorFlow.
"""
