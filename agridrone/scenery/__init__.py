"""Painters of aerial scenes (numpy/OpenCV only): the ground of a field (``field``: soil, crop rows at a
growth stage, stressed and weed patches with masks) and what stands on it (``objects``: trees, people,
animals, vehicles, poles, buildings, with their shadows and lean).

Shared by the two things that must look alike: the training data generator (``agridrone.training.synth``)
and the simulated camera (``agridrone.sim.camera``), so that what the drone sees in simulation is what
its models were trained on. Neither TensorFlow nor the simulator is imported here.
"""
