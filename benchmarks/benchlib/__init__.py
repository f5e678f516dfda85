"""What the benchmark scripts share: inputs, models, child processes, memory, timing, records.

The scripts run as ``python benchmarks/<script>.py``, so ``benchmarks/`` is first on ``sys.path``
and ``import benchlib`` needs no path edits; the run-time package comes from the environment
(``pip install -e .``). Each module is small and imports its heavy dependencies inside functions:

- ``machine``: ``loadavg()``/``loadavg_text()`` (print them with every figure), ``peak_rss_bytes()``
  (VmHWM of this process, never ``ru_maxrss``), ``PeakMemory`` (load peak vs serving peak),
  ``proc_status()``, ``thread_env(threads)`` (a child's pinned thread pools), ``versions()``,
  ``machine_info()``, ``gpu_mem_of_pid()``.
- ``models``: the one loader of ``tests/random_models.py`` and ``tests/model_shapes.json``
  (``random_models()``, ``build_checkpoint()``, ``full_depth()``, ``SHAPES``, ``tiny-v1``/``tiny-v2``).
- ``inputs``: ``QUERY``, ``make_inputs()`` (documents of drawn token lengths), ``sentence()``,
  ``long_document()``, ``pair_lengths()`` (rows as the reranker tokenizes them).
- ``children``: ``run_child()``/``child_main()`` (a measurement in a fresh interpreter) and
  ``run_watched()`` (the same with a memory and time limit).
- ``timing``: ``time_calls()`` -> ``Timing`` (median, min), ``best_time()``.
- ``results``: ``Drift`` (max abs diff, Spearman, top-10 overlap: ``mxbai_integrations.ranking``),
  ``markdown_table()``, ``mib()``, ``write_json()``, ``pick()`` (a record from an older JSON dict).
- ``artifacts``: ``ensure_artifact()`` (export once, reuse while checkpoint and exporter are unchanged).
- ``ort_profile``: ``profile_rank()`` -> ``OrtProfile`` (onnxruntime per-op time of one ``rank()``).
- ``flops``: ``model_flops()`` and the matmul peak (``MatmulPeaks``).
- ``rerank``: ``rerank_bench.py``'s records (``RerankResult``, its JSON), printout, children and plan.
"""
