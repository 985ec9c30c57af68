"""The evaluation gate: policies and their recorded decisions."""

from shipyard.gate.policy import PASSED, REJECTED, SKIPPED, GateDecision, decide

__all__ = ["PASSED", "REJECTED", "SKIPPED", "GateDecision", "decide"]
