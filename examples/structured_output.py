"""Structured output: the final answer is parsed into a pydantic model.

The agent tells the model the JSON schema; a reply that does not fit goes back to the model to
correct (here, the scripted model forgets a field the first time).
Runs offline on a scripted model; set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN to run it
on Workers AI.
"""

import os

from pydantic import BaseModel

from agentkit.agent import Agent
from agentkit.models import Model
from agentkit.testing import ScriptedModel


class Movie(BaseModel):
    title: str
    year: int
    director: str


def make_model() -> Model:
    if os.environ.get("CLOUDFLARE_ACCOUNT_ID") and os.environ.get("CLOUDFLARE_API_TOKEN"):
        from agentkit.models import WorkersAI

        return WorkersAI()
    return ScriptedModel(
        [
            'Sure! {"title": "Alien", "year": 1979}',  # missing "director": sent back
            '```json\n{"title": "Alien", "year": 1979, "director": "Ridley Scott"}\n```',
        ]
    )


agent = Agent(make_model(), output_type=Movie, system_prompt="You know films well.")

if __name__ == "__main__":
    result = agent.run_sync("Which 1979 science-fiction horror film has a xenomorph?")
    movie = result.output
    print(f"{movie.title} ({movie.year}), directed by {movie.director}")
    print(f"took {result.steps} model requests")
