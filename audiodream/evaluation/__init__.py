"""Stage `eval`: open-loop CE by horizon against baselines, syllable completion, dreams as sound,
and the greedy agent's return. See stage.py for the outputs and each module for its protocol."""

from audiodream.evaluation.completion import CompletionPrompt, CompletionScores, completion_scores, imagine_next_syllables, syllable_histograms
from audiodream.evaluation.episodes import PlayedEpisodes, play_episodes, replay_episodes
from audiodream.evaluation.imagination import Temperatures, behaviour_policy, dream_mels, dream_tokens, imagine_mels, imagine_tokens, observe_prompt, render_steps
from audiodream.evaluation.open_loop import open_loop_metrics
from audiodream.evaluation.stage import EvalPaths, eval_stage, run_eval
from audiodream.evaluation.trained_run import MissingStageOutput, TrainedRun, load_trained_run

__all__ = [
    "CompletionPrompt",
    "CompletionScores",
    "EvalPaths",
    "MissingStageOutput",
    "PlayedEpisodes",
    "Temperatures",
    "TrainedRun",
    "behaviour_policy",
    "completion_scores",
    "dream_mels",
    "dream_tokens",
    "eval_stage",
    "imagine_mels",
    "imagine_next_syllables",
    "imagine_tokens",
    "load_trained_run",
    "observe_prompt",
    "open_loop_metrics",
    "play_episodes",
    "render_steps",
    "replay_episodes",
    "run_eval",
    "syllable_histograms",
]
