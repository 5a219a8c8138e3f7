"""The monitor's charts: GPU lines (:mod:`.gpu`, one per GPU, from the sample
columns of :mod:`.columns`), the machine's system figures (:mod:`.system`),
training metrics (:mod:`.scalars`), the point budget they share
(:mod:`.downsample`) and the static snapshot's inline SVG lines (:mod:`.sparkline`)."""
