"""Stage orchestration: resolve run.dir, reuse finished stages, run the rest in order."""
