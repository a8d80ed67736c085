"""Tools beside the job, never shipped in ``packages.zip``: the data generator
(:mod:`jobs.tools.generate_data`), the detection-quality run (:mod:`jobs.tools.quality`) and
the benchmark (:mod:`jobs.tools.bench`, with its daily case, floor and scaling model)."""
