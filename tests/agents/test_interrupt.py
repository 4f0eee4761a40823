"""Ctrl-C and SIGTERM during learn() stop between two steps, or part-way through a support draw,
which is then undone: a save then resumes exactly.

Every test starts from Python's default handlers, whatever the shell that runs the tests: a job a
script starts in the background (``nohup pytest ... &``, ``setsid pytest ... &``) inherits an ignored
SIGINT, which learn() rightly leaves ignored. The tests of that case ignore SIGINT themselves.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from qipo_agents import QIPOFlow
from qipo_agents.common.interrupts import TrainingSignal, defer_interrupts
from qipo_agents.qipo.behavior import BehaviorWarmup
from qipo_agents.qipo.critic import InSupportSoftmaxQLearning
from qipo_agents.qipo.refinement import QWeightedRefinement
from qipo_agents.qipo.support import SamplerConfig

from .conftest import TINY

PHASE_CLASSES = (BehaviorWarmup, InSupportSoftmaxQLearning, QWeightedRefinement)
# (state, action) pairs per sampler call: TINY's support draws of 4 actions per state then take many
# chunks, 250 for all 4000 states; in a run shortened to 70 steps, 80 for the critic's 20 x 64
# transitions and 16 for a renewal's ceil(20 x 64 / 5) = 256 states
SMALL_CHUNKS = dict(sampling_chunk_size=64)


def make_agent(bandit_data, **overrides):
    return QIPOFlow("MlpPolicy", bandit_data, reward_scaling="none", **{**TINY, **overrides})


def learn_until_signal(agent, **learn_kwargs) -> TrainingSignal:
    """``agent.learn(...)``, which a signal must stop with a TrainingSignal; a plain KeyboardInterrupt
    (the signal was not deferred) fails the test instead of stopping the test session."""
    try:
        agent.learn(**learn_kwargs)
    except TrainingSignal as stop:
        return stop
    except KeyboardInterrupt:
        pytest.fail("the signal raised a plain KeyboardInterrupt: learn() did not defer it")
    pytest.fail("learn() finished without being interrupted")


def assert_same_training(a, b) -> None:
    """Identical step counts, network parameters and optimiser states."""
    assert a.num_timesteps == b.num_timesteps and a._schedule_position == b._schedule_position
    for (name, x), (_, y) in zip(a.policy.state_dict().items(), b.policy.state_dict().items()):
        assert torch.equal(x, y), name
    for name, optimizer in a.policy.optimizers().items():
        for (key, x), (_, y) in zip(
            _flat(optimizer.state_dict()), _flat(b.policy.optimizers()[name].state_dict()), strict=True
        ):
            assert torch.equal(torch.as_tensor(x), torch.as_tensor(y)), f"{name} {key}"


def _flat(state, prefix=""):
    if isinstance(state, dict):
        for key in sorted(state, key=str):
            yield from _flat(state[key], f"{prefix}/{key}")
    elif isinstance(state, list | tuple):
        for index, item in enumerate(state):
            yield from _flat(item, f"{prefix}/{index}")
    elif isinstance(state, torch.Tensor | int | float):
        yield prefix, state


def signal_inside_phase_step(monkeypatch, at_call: int, *signums: int) -> None:
    """Send ``signums`` to this process at the end of the ``at_call``-th phase ``train_step`` (1-based,
    counted over all phases): the minibatch is drawn and the optimisers have stepped, but the step
    counters have not advanced yet. Undeferred, the KeyboardInterrupt would land right there."""
    calls = [0]
    for phase_class in PHASE_CLASSES:

        def train_step(self, original=phase_class.train_step):
            losses = original(self)
            calls[0] += 1
            if calls[0] == at_call:
                for signum in signums:
                    send(signum)
            return losses

        monkeypatch.setattr(phase_class, "train_step", train_step)


def send(signum: int) -> None:
    """Send ``signum`` to this process, once learn() has taken it over or while it is ignored (a
    SIGTERM with its default handler would end the test session)."""
    assert signal.getsignal(signum) not in (signal.SIG_DFL, signal.default_int_handler), "not deferred"
    os.kill(os.getpid(), signum)


def count_sampling_chunks(
    monkeypatch, agent, signal_at: int | None = None, signum: int | None = None
) -> dict[int, int]:
    """Count the sampler calls (chunks) ``agent`` makes, by the schedule position of the step that
    makes them; send ``signum`` to this process while the first chunk of position ``signal_at`` is drawn."""
    chunks: dict[int, int] = {}
    sample = SamplerConfig.sample

    def counting_sample(self, network, observations, noise, guidance=None):
        position = agent._schedule_position
        chunks[position] = chunks.get(position, 0) + 1
        if position == signal_at and chunks[position] == 1:
            send(signum)
        return sample(self, network, observations, noise, guidance)

    monkeypatch.setattr(SamplerConfig, "sample", counting_sample)
    return chunks


class CtrlCAfter(BaseCallback):
    """Send SIGINT from a timer thread ``delay`` seconds after training starts; stop training
    (a failure: no signal arrived) after ``give_up`` steps."""

    def __init__(self, delay: float, give_up: int):
        super().__init__()
        self.timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
        self.give_up = give_up

    def _on_training_start(self) -> None:
        self.timer.start()

    def _on_step(self) -> bool:
        return self.num_timesteps < self.give_up


@pytest.fixture(autouse=True)
def default_signal_handlers():
    """Python's own handlers for the test (SIGINT raises KeyboardInterrupt, SIGTERM ends the
    process), the handlers in place before it afterwards."""
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
        signal.SIGTERM: signal.signal(signal.SIGTERM, signal.SIG_DFL),
    }
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@pytest.fixture
def sigint_ignored(default_signal_handlers):
    """SIGINT ignored, as in a job a script started in the background (``nohup cmd &``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="module")
def uninterrupted(bandit_data):
    return make_agent(bandit_data).learn()


# TINY: warm-up steps 0-59, in-support critic 60-99, refinement 100-139
@pytest.mark.parametrize("step", [30, 80, 110], ids=["warm-up", "critic", "refinement"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_inside_a_step_stops_after_it_and_resumes_exactly(
    bandit_data, uninterrupted, monkeypatch, tmp_path, capsys, step, signum
):
    agent = make_agent(bandit_data)
    with monkeypatch.context() as patch:
        signal_inside_phase_step(patch, step, signum)
        stop = learn_until_signal(agent)
    assert (stop.signal_name, stop.at_step_boundary) == (signal.Signals(signum).name, True)
    assert agent.num_timesteps == agent._schedule_position == step  # the step it arrived in was finished
    assert "training stops after the current step" in capsys.readouterr().err
    resumed = QIPOFlow.load(agent.save(tmp_path / "interrupted"), device="cpu", dataset=bandit_data)
    resumed.learn(reset_num_timesteps=False)
    assert_same_training(resumed, uninterrupted)


@pytest.fixture(scope="module")
def uninterrupted_in_small_chunks(bandit_data):
    """``run(total_timesteps)``: the uninterrupted run with SMALL_CHUNKS, and its sampler calls by
    schedule position."""
    runs = {}

    def run(total_timesteps):
        if total_timesteps not in runs:
            agent = make_agent(bandit_data, **SMALL_CHUNKS)
            with pytest.MonkeyPatch.context() as patch:
                chunks = count_sampling_chunks(patch, agent)
                agent.learn(total_timesteps)
            runs[total_timesteps] = agent, chunks
        return runs[total_timesteps]

    return run


# TINY: the in-support critic draws its support at step 60, the refinement renews at 100 and 120;
# shortened to 70 steps, the critic draws at 30 for a random subset, the one renewal comes at 50
@pytest.mark.parametrize(
    "total_timesteps, step, phase_before",
    [(None, 60, "behavior"), (None, 100, "critic"), (None, 120, "policy"), (70, 30, "behavior"), (70, 50, "critic")],
    ids=["critic-support", "first-renewal", "renewal", "shortened-critic-support", "shortened-renewal"],
)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_support_draw_stops_it_at_once_and_resumes_exactly(
    bandit_data, uninterrupted_in_small_chunks, monkeypatch, tmp_path, total_timesteps, step, phase_before, signum
):
    uninterrupted, full_draw = uninterrupted_in_small_chunks(total_timesteps)
    agent = make_agent(bandit_data, **SMALL_CHUNKS)
    with monkeypatch.context() as patch:
        chunks = count_sampling_chunks(patch, agent, signal_at=step, signum=signum)
        stop = learn_until_signal(agent, total_timesteps=total_timesteps)
    assert full_draw[step] > 10 and chunks[step] == 1  # the chunk drawing when it arrived was the last
    assert (stop.signal_name, stop.at_step_boundary) == (signal.Signals(signum).name, True)
    # the step that drew is undone: the agent stands where the step before left it
    assert agent.num_timesteps == agent._schedule_position == step and agent.current_phase == phase_before
    if phase_before == "policy":
        assert agent._phase.n_renewals == 1 and agent._phase.steps_since_renewal == 20
    resumed = QIPOFlow.load(agent.save(tmp_path / "interrupted"), device="cpu", dataset=bandit_data)
    resumed.learn(reset_num_timesteps=False)
    assert_same_training(resumed, uninterrupted)


class SignalAtTrainingStart(BaseCallback):
    """Send ``signum`` to this process before the first step of learn()."""

    def __init__(self, signum: int):
        super().__init__()
        self.signum = signum

    def _on_training_start(self) -> None:
        send(self.signum)

    def _on_step(self) -> bool:
        return True


def test_a_signal_before_the_first_step_of_a_resumed_run_saves_what_was_loaded(bandit_data, uninterrupted, tmp_path):
    first = make_agent(bandit_data)
    first.learn(callback=lambda local_vars, _: local_vars["self"].num_timesteps < 80)  # mid-critic: saves its support
    resumed = QIPOFlow.load(first.save(tmp_path / "first"), device="cpu", dataset=bandit_data)
    stop = learn_until_signal(resumed, reset_num_timesteps=False, callback=SignalAtTrainingStart(signal.SIGTERM))
    assert stop.at_step_boundary and resumed.num_timesteps == 80
    again = QIPOFlow.load(resumed.save(tmp_path / "second"), device="cpu", dataset=bandit_data)
    again.learn(reset_num_timesteps=False)  # on the critic's support the first run drew, not a new draw
    assert_same_training(again, uninterrupted)


def test_ctrl_c_from_another_thread_resumes_exactly(bandit_data, tmp_path):
    """The user's case: Ctrl-C at a moment nobody chose, most likely in the middle of a step."""
    long_warm_up = dict(behavior_steps=100_000)  # the timer fires long before the schedule ends
    agent = make_agent(bandit_data, **long_warm_up)
    ctrl_c = CtrlCAfter(delay=0.2, give_up=50_000)
    try:
        stop = learn_until_signal(agent, callback=ctrl_c)
    finally:
        ctrl_c.timer.join()
    assert stop.at_step_boundary and agent.num_timesteps > 0
    stopped_at = agent.num_timesteps
    resumed = QIPOFlow.load(agent.save(tmp_path / "interrupted"), device="cpu", dataset=bandit_data)
    resumed.learn(20, reset_num_timesteps=False)
    reference = make_agent(bandit_data, **long_warm_up)
    reference.learn(callback=lambda local_vars, _: local_vars["self"].num_timesteps < stopped_at + 20)
    assert_same_training(resumed, reference)


def test_a_second_ctrl_c_stops_at_once(bandit_data, monkeypatch):
    agent = make_agent(bandit_data)
    signal_inside_phase_step(monkeypatch, 30, signal.SIGINT, signal.SIGINT)
    stop = learn_until_signal(agent)
    assert (stop.signal_name, stop.at_step_boundary) == ("SIGINT", False)
    assert agent.num_timesteps == 29  # inside step 30: its counters never advanced


def test_a_signal_in_the_last_step_still_stops_training(bandit_data, monkeypatch):
    agent = make_agent(bandit_data)
    signal_inside_phase_step(monkeypatch, 140, signal.SIGTERM)
    stop = learn_until_signal(agent)
    assert stop.signal_name == "SIGTERM" and agent.num_timesteps == 140


def test_learn_restores_the_signal_handlers(bandit_data, monkeypatch):
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    during = []

    def record(local_vars, _globals):
        during.append({signum: signal.getsignal(signum) for signum in before})
        return True

    agent = make_agent(bandit_data)
    agent.learn(5, callback=record)
    assert all(handlers[signum] != before[signum] for handlers in during for signum in before)
    assert {signum: signal.getsignal(signum) for signum in before} == before
    # ... when learn() is interrupted too
    signal_inside_phase_step(monkeypatch, 2, signal.SIGINT)
    learn_until_signal(make_agent(bandit_data), total_timesteps=5)
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_a_handler_the_program_installed_is_left_alone(bandit_data):
    received = []

    def own_handler(signum, frame):
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, own_handler)
    try:
        seen = []
        make_agent(bandit_data).learn(3, callback=lambda *_: seen.append(signal.getsignal(signal.SIGTERM)) or True)
        assert seen == [own_handler] * 3 and signal.getsignal(signal.SIGTERM) is own_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_ignored_sigint_leaves_training_running(bandit_data, uninterrupted, sigint_ignored, monkeypatch, capsys):
    """A run started with SIGINT ignored (``nohup python train.py &`` from a script) is not stopped
    by SIGINT: it trains to the end of its schedule, exactly as a run that received none."""
    seen = []
    agent = make_agent(bandit_data)
    signal_inside_phase_step(monkeypatch, 30, signal.SIGINT)
    try:
        agent.learn(callback=lambda *_: seen.append(signal.getsignal(signal.SIGINT)) or True)
    except KeyboardInterrupt as stop:
        pytest.fail(f"the ignored SIGINT stopped training: {stop!r}")
    assert agent.num_timesteps == 140 and seen == [signal.SIG_IGN] * 140
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert "received" not in capsys.readouterr().err
    assert_same_training(agent, uninterrupted)


def test_sigterm_still_stops_a_run_whose_sigint_is_ignored(
    bandit_data, uninterrupted, sigint_ignored, monkeypatch, tmp_path
):
    agent = make_agent(bandit_data)
    with monkeypatch.context() as patch:
        signal_inside_phase_step(patch, 80, signal.SIGINT, signal.SIGTERM)
        stop = learn_until_signal(agent)
    assert (stop.signal_name, stop.at_step_boundary) == ("SIGTERM", True) and agent.num_timesteps == 80
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    resumed = QIPOFlow.load(agent.save(tmp_path / "interrupted"), device="cpu", dataset=bandit_data)
    resumed.learn(reset_num_timesteps=False)
    assert_same_training(resumed, uninterrupted)


def test_learn_outside_the_main_thread_changes_no_handler(bandit_data):
    before = signal.getsignal(signal.SIGINT)
    agent, errors = make_agent(bandit_data), []

    def learn():
        try:
            agent.learn(5)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    thread = threading.Thread(target=learn)
    thread.start()
    thread.join()
    assert errors == [] and agent.num_timesteps == 5
    assert signal.getsignal(signal.SIGINT) is before


def test_defer_interrupts_raises_a_signal_still_pending_when_the_block_ends():
    with pytest.raises(TrainingSignal, match="SIGTERM between two steps"):
        with defer_interrupts():
            send(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
