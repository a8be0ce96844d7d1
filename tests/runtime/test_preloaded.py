"""A forked kernel counts a pre-imported package for its stage only when the stage imports it."""

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True).stdout.strip()


def test_a_package_imported_first_by_the_template_stays_in_the_closure_of_one_that_needs_it():
    # scipy is imported before sklearn: the order-based difference alone would leave it out of sklearn's needs.
    out = _run("""
        import sys
        from nbops.runtime import preloaded
        before = {n.partition(".")[0] for n in sys.modules}
        import scipy.sparse, sklearn.linear_model
        c = preloaded.closures(["scipy.sparse", "sklearn.linear_model"], before)
        print("scipy" in c["sklearn"], "sklearn" in c["scipy"])
    """)
    assert out == "True False"


def test_only_what_the_stage_imports_after_the_fork_counts():
    out = _run("""
        import sys
        from nbops.runtime import preloaded
        before = {n.partition(".")[0] for n in sys.modules}
        import scipy.sparse, sklearn.linear_model, json
        preloaded.watch(preloaded.closures(["scipy.sparse", "sklearn.linear_model"], before))
        first = preloaded.unused()
        import scipy.sparse as sp  # the stage's own import of a loaded module
        print("scipy" in first, "sklearn" in first, "scipy" in preloaded.unused(), "sklearn" in preloaded.unused())
    """)
    assert out == "True True False True"
