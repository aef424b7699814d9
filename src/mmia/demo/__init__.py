"""`mmia demo`: build (or reuse) the testbeds, run every demo step on each, save and print the run."""

from mmia.demo.run import DemoOutcome, build_all, print_summary, run_demo
from mmia.demo.steps import DemoContext, list_demo_steps, register_demo_step

__all__ = ["DemoContext", "DemoOutcome", "build_all", "list_demo_steps", "print_summary", "register_demo_step",
           "run_demo"]
