"""Stage `generate`: continue an audio file with a run's trained world model (see stage.py)."""

from audiodream.generation.prompt import MIN_PROMPT_STEPS, PromptClip, PromptError, load_prompt
from audiodream.generation.stage import Continuation, continue_prompt, generate_stage

__all__ = ["Continuation", "MIN_PROMPT_STEPS", "PromptClip", "PromptError", "continue_prompt", "generate_stage", "load_prompt"]
