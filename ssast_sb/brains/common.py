"""Small pieces shared by the pretraining and fine-tuning Brains.

Authors
 * ssast-sb contributors
"""

import atexit
import dataclasses
import inspect
import io
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Optional
from unittest import mock

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references
from ruamel.yaml import YAML
from speechbrain.utils.checkpoints import (
    Checkpoint,
    Checkpointer,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import ddp_barrier, get_rank, if_main_process
from speechbrain.utils.run_opts import RunOptions

from ssast_sb.brains.process_group import close_process_group
from ssast_sb.brains.run_record import CommandLine, guard_output_folder
from ssast_sb.errors import OptionError
from ssast_sb.fileio import atomic_open, save_atomic
from ssast_sb.schedules import set_lr, staircase_warmup_lr

logger = logging.getLogger(__name__)


@register_checkpoint_hooks
class SeededGenerator:
    """A CPU ``torch.Generator`` seeded from the run seed and the DDP rank, checkpointed.

    SpeechBrain seeds every DDP process with the same seed; mixing the rank in
    makes the processes draw different masks. Its state is saved with the
    checkpoints, so a resumed run continues the same random sequence.

    The generator lives on the CPU whatever ``--device`` says, and what it draws
    is moved to the device with ``.to(device)``: a CUDA generator cannot feed the
    CPU draws of the augmentation (PyTorch refuses it), needs CUDA to be built or
    checkpointed, and gives a different sequence than the CPU one, so a run
    resumed on another device would not continue the same draws.

    Arguments
    ---------
    seed : int
        Run seed.
    rank : int, optional
        DDP rank; by default this process's (SpeechBrain's ``get_rank``, 0 alone).

    Example
    -------
    >>> a, b = SeededGenerator(1, 0), SeededGenerator(1, 1)
    >>> torch.equal(torch.rand(3, generator=a.generator), torch.rand(3, generator=b.generator))
    False
    >>> a.generator.device
    device(type='cpu')
    """

    def __init__(self, seed, rank=None):
        rank = (get_rank() or 0) if rank is None else rank
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed) * 1_000_003 + 7919 * int(rank) + 1)

    @mark_as_saver
    def save(self, path):
        """Saves the generator state."""
        save_atomic(self.generator.get_state(), path)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restores the generator state (a CPU byte tensor, whatever device wrote it)."""
        del end_of_epoch
        self.generator.set_state(torch.load(path, map_location="cpu", weights_only=True))


class GlobalNormClipping:
    """Brain mixin: clips the gradient norm of all trainable parameters together.

    SpeechBrain 1.1's ``Brain.optimizers_step`` clips ``param_groups[0]`` of each
    optimiser alone, so with two parameter groups (a backbone and a head at its
    own learning rate) the head is never clipped and the norm is the backbone's.
    s3prl, whose protocol the SUPERB recipes follow, clips the global norm over
    every trainable parameter. This mixin does the same: one norm over every
    parameter of every group of the stepped optimisers, clipped at
    ``max_grad_norm`` (a departure from SpeechBrain's default, equal to it when
    there is one group). The rest of the step is SpeechBrain's: unscale, skip
    non-finite gradients, step, update the scaler, zero the gradients; it is
    written out here because SpeechBrain has no hook between unscaling and
    clipping.

    Example
    -------
    >>> class Clipped(GlobalNormClipping, sb.Brain):
    ...     def compute_forward(self, batch, stage):
    ...         return self.modules.head(self.modules.body(batch))
    ...     def compute_objectives(self, predictions, batch, stage):
    ...         return predictions.sum() * 100
    >>> body, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    >>> sgd = lambda _: torch.optim.SGD(
    ...     [{"params": body.parameters()}, {"params": head.parameters()}], lr=1.0)
    >>> brain = Clipped({"body": body, "head": head}, sgd, run_opts={"max_grad_norm": 1.0})
    >>> brain.init_optimizers()
    >>> output = brain.compute_forward(torch.ones(3, 2), None)
    >>> brain.compute_objectives(output, None, None).backward()
    >>> before = [p.detach().clone() for p in brain.modules.parameters()]
    >>> brain.optimizers_step()  # SGD at lr 1: the update is the clipped gradient
    >>> step = [(p.detach() - b).flatten() for p, b in zip(brain.modules.parameters(), before)]
    >>> round(float(torch.cat(step).norm()), 4)
    1.0
    """

    def optimizers_step(self):
        """SpeechBrain's optimiser step with one global-norm clip over every group."""
        if self.optimizers_dict is not None:
            optimizers = self.freeze_optimizers(self.optimizers_dict)
        elif self.opt_class is not None:
            optimizers = {"optimizer": self.optimizer}
        else:
            return
        for optimizer in optimizers.values():
            self.scaler.unscale_(optimizer)
        clip_global_grad_norm(optimizers.values(), self.max_grad_norm)
        if not self.scaler.is_enabled() and self.skip_nonfinite_grads:
            self.check_gradients()
        for optimizer in optimizers.values():
            self.scaler.step(optimizer)
        self.scaler.update()
        for optimizer in optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        self.optimizer_step += 1


def _grads(optimizers):
    return [
        param
        for optimizer in optimizers
        for group in optimizer.param_groups
        for param in group["params"]
        if param.grad is not None
    ]


def global_grad_norm(*optimizers):
    """The L2 norm of the gradients of every parameter group of ``optimizers``.

    Arguments
    ---------
    *optimizers : torch.optim.Optimizer
        Optimisers whose parameters are counted.

    Returns
    -------
    float

    Example
    -------
    >>> a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    >>> a.grad, b.grad = torch.tensor([3.0]), torch.tensor([4.0])
    >>> global_grad_norm(torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=1.0))
    5.0
    """
    grads = [param.grad.detach().float() for param in _grads(optimizers)]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))


def clip_global_grad_norm(optimizers, max_norm):
    """Clips the gradients of every group of ``optimizers`` by their global norm.

    Arguments
    ---------
    optimizers : iterable of torch.optim.Optimizer
        Optimisers whose gradients are clipped together.
    max_norm : float
        Largest norm kept.

    Returns
    -------
    torch.Tensor
        The norm before clipping.

    Example
    -------
    >>> a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    >>> a.grad, b.grad = torch.tensor([3.0]), torch.tensor([4.0])
    >>> sgd = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=1.0)
    >>> float(clip_global_grad_norm([sgd], 1.0))
    5.0
    >>> round(float(a.grad), 4), round(float(b.grad), 4)
    (0.6, 0.8)
    """
    return torch.nn.utils.clip_grad_norm_(_grads(optimizers), max_norm)


class RunningMeans:
    """Weighted running means of named scalar outputs.

    Arguments
    ---------
    names : sequence of str
        Keys to average.

    Example
    -------
    >>> means = RunningMeans(["loss"])
    >>> means.update({"loss": torch.tensor(1.0)}, weight=1)
    >>> means.update({"loss": torch.tensor(4.0)}, weight=3)
    >>> means.summarize()
    {'loss': 3.25}
    """

    def __init__(self, names):
        self.names = tuple(names)
        self.sums = dict.fromkeys(self.names, 0.0)
        self.weight = 0.0

    def update(self, values, weight=1):
        """Adds one batch's values with a weight (its number of clips)."""
        for name in self.names:
            # Tensors are summed as they are, so no step waits for the device.
            self.sums[name] = self.sums[name] + values[name].detach() * weight
        self.weight += weight

    def summarize(self):
        """The means so far (empty stages give NaN)."""
        return {
            name: (float(self.sums[name]) / self.weight if self.weight else float("nan"))
            for name in self.names
        }


#: Prefix of checkpoint folders still being written (SpeechBrain ignores them).
PARTIAL_PREFIX = ".partial-"


class AtomicCheckpointer(Checkpointer):
    """A SpeechBrain ``Checkpointer`` whose checkpoints appear only once complete.

    SpeechBrain writes a checkpoint's ``CKPT.yaml`` first and its tensors after,
    so a process killed during a save leaves a folder that looks valid and
    fails to load. Here every checkpoint is written into a hidden
    ``.partial-CKPT+...`` folder and renamed when complete; leftovers of a killed
    save are removed on the next recovery.

    Arguments
    ---------
    checkpoints_dir : str
        Folder of the checkpoints.
    recoverables : dict, optional
        Objects to save and load.
    **kwargs
        Other ``Checkpointer`` arguments.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> checkpointer = AtomicCheckpointer(folder, {"layer": torch.nn.Linear(2, 2)})
    >>> ckpt = checkpointer.save_checkpoint()
    >>> ckpt.path.name.startswith("CKPT+"), sorted(p.name for p in ckpt.path.iterdir())
    (True, ['CKPT.yaml', 'layer.ckpt'])
    """

    def _new_checkpoint_dirpath(self):
        final = super()._new_checkpoint_dirpath()
        return final.with_name(PARTIAL_PREFIX + final.name)

    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):
        """Saves into a partial folder, then renames it to its final name.

        SpeechBrain's own "Saved ... checkpoint" line would name the partial folder,
        which no longer exists once renamed, so it is logged here with the final name.
        Under DDP every process waits for the rename: SpeechBrain's deletion of old
        checkpoints lists the folder on every process and calls one collective per
        deletion, so a process that listed it before the rename would disagree on
        the deletions and the processes would block each other.
        """
        ckpt = super().save_checkpoint(meta, end_of_epoch, name, verbosity=logging.DEBUG)
        if ckpt is not None and ckpt.path.name.startswith(PARTIAL_PREFIX):
            final = ckpt.path.with_name(ckpt.path.name[len(PARTIAL_PREFIX) :])
            os.replace(ckpt.path, final)
            files = {name: final / path.name for name, path in ckpt.paramfiles.items()}
            ckpt = Checkpoint(final, ckpt.meta, files)
            kind = "end-of-epoch" if end_of_epoch else "intra-epoch"
            logger.log(verbosity, "Saved an %s checkpoint in %s", kind, final)
        ddp_barrier()
        return ckpt

    def recover_if_possible(self, *args, **kwargs):
        """Removes folders of interrupted saves, then recovers as SpeechBrain does."""
        if if_main_process() and self.checkpoints_dir.exists():
            for leftover in self.checkpoints_dir.glob(PARTIAL_PREFIX + "*"):
                logger.warning("Removing interrupted checkpoint %s", leftover)
                shutil.rmtree(leftover, ignore_errors=True)
        return super().recover_if_possible(*args, **kwargs)


#: SpeechBrain's two intra-epoch checkpoint options, which it refuses together.
CKPT_INTERVALS = ("ckpt_interval_minutes", "ckpt_interval_steps")
#: Suffix of the output folder of ``--debug`` runs.
DEBUG_SUFFIX = "-debug"


def take_float_option(argv, name):
    """Removes ``--name X`` (or ``--name=X``) from ``argv`` and returns its value as a float.

    SpeechBrain 1.1 parses ``--ckpt_interval_minutes`` as an int, so
    ``--ckpt_interval_minutes 0.5`` fails; the recipes read it here instead.

    Arguments
    ---------
    argv : list of str
        The command line.
    name : str
        Option name without dashes.

    Returns
    -------
    tuple
        ``(argv without the option, value or None)``.

    Example
    -------
    >>> take_float_option(["h.yaml", "--ckpt_interval_minutes", "0.5", "--seed", "1"],
    ...                   "ckpt_interval_minutes")
    (['h.yaml', '--seed', '1'], 0.5)
    >>> take_float_option(["h.yaml", "--ckpt_interval_minutes=2"], "ckpt_interval_minutes")
    (['h.yaml'], 2.0)
    """
    flag, rest, value = f"--{name}", [], None
    items = iter(argv)
    for item in items:
        if item == flag:
            text = next(items, None)
        elif item.startswith(flag + "="):
            text = item.split("=", 1)[1]
        else:
            rest.append(item)
            continue
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise SystemExit(f"{flag} takes a number of minutes, got {text!r}") from None
    return rest, value


def resolve_checkpoint_intervals(run_opts, hparams):
    """Lets the command line's checkpoint interval replace the YAML's other one.

    SpeechBrain exits when both intervals are positive. When the command line sets
    one and the YAML the other, the command line's wins: the YAML's is set to 0,
    with a log line.

    Arguments
    ---------
    run_opts : speechbrain.utils.run_opts.RunOptions
        Parsed run options.
    hparams : dict
        The loaded YAML.

    Returns
    -------
    speechbrain.utils.run_opts.RunOptions
        The run options, with the YAML's other interval set to 0 where needed.

    Example
    -------
    >>> from speechbrain.utils.run_opts import RunOptions
    >>> opts = RunOptions.from_dictionary({"ckpt_interval_steps": 100})
    >>> opts = resolve_checkpoint_intervals(opts, {"ckpt_interval_minutes": 30})
    >>> opts.ckpt_interval_minutes, opts.ckpt_interval_steps
    (0, 100)
    """
    given = [
        name for name in CKPT_INTERVALS if name in run_opts.overridden_args and run_opts[name] > 0
    ]
    if len(given) != 1:
        return run_opts
    (other,) = set(CKPT_INTERVALS) - set(given)
    if hparams.get(other, 0) and other not in run_opts.overridden_args:
        logger.info(
            "--%s %s replaces the YAML's %s: %s",
            given[0],
            run_opts[given[0]],
            other,
            hparams[other],
        )
        overridden = run_opts.overridden_args | {other}
        return dataclasses.replace(run_opts, **{other: 0}, overridden_args=overridden)
    return run_opts


def debug_output_folder(output_folder):
    """Where a ``--debug`` run writes: beside the real run's folder, never inside it.

    Example
    -------
    >>> debug_output_folder("results/esc50/0")
    'results/esc50/0-debug'
    """
    return str(output_folder).rstrip("/") + DEBUG_SUFFIX


def resolved_yaml(hparams_file, overrides):
    """A recipe YAML's top-level values, references resolved, without building any object.

    Placeholders the command line leaves unset become empty strings; tagged
    values (``!new:``, ``!apply:``) stay unbuilt. Recipes read their data
    options from it before the objects exist.

    Arguments
    ---------
    hparams_file : str
        The YAML.
    overrides : dict
        Command-line overrides.

    Returns
    -------
    dict-like

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "h.yaml")
    >>> _ = open(path, "w").write("seed: 1\\ndata: !PLACEHOLDER\\nout: !ref runs/<seed>\\n")
    >>> values = resolved_yaml(path, {"seed": 7})
    >>> values["out"], values["data"]
    ('runs/7', '')
    """
    with open(hparams_file, encoding="utf-8") as stream:
        text = stream.read()
    unset = re.findall(r"^(\w+):\s*!PLACEHOLDER", text, flags=re.MULTILINE)
    fillers = {name: "" for name in unset if name not in overrides}
    resolved = resolve_references(io.StringIO(text), {**fillers, **overrides}).getvalue()
    return YAML(typ="rt").load(resolved)


#: A YAML line whose value the command line must give, with its comment.
PLACEHOLDER_LINE = re.compile(r"^(\w+):\s*!PLACEHOLDER[ \t]*(?:#[ \t]*(.*))?$", re.MULTILINE)


def check_placeholders(hparams_file, overrides):
    """Every value the YAML leaves to the command line (``!PLACEHOLDER``) must be given.

    HyperPyYAML would stop at the first one with a traceback; this names every
    missing option with the YAML's comment on it (what it takes, and ``null``
    where the recipe can do without).

    Arguments
    ---------
    hparams_file : str
        The YAML.
    overrides : dict
        The command line's overrides.

    Raises
    ------
    ssast_sb.errors.OptionError

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "h.yaml")
    >>> _ = open(path, "w").write("data: !PLACEHOLDER  # a folder of clips\\nseed: 1\\n")
    >>> check_placeholders(path, {"data": "/clips"})
    >>> try:
    ...     check_placeholders(path, {})
    ... except OptionError as error:
    ...     print(str(error).split(": ", 1)[1])
    pass --data (a folder of clips).
    """
    with open(hparams_file, encoding="utf-8") as stream:
        unset = [
            (key, comment)
            for key, comment in PLACEHOLDER_LINE.findall(stream.read())
            if key not in overrides
        ]
    if unset:
        wanted = "; ".join(
            f"--{key}" + (f" ({comment.strip()})" if comment.strip() else "")
            for key, comment in unset
        )
        raise OptionError(f"{hparams_file} leaves these to the command line: pass {wanted}.")


def parse_without_abbreviations(argv):
    """SpeechBrain's ``parse_arguments``, with its run options matched by their full names only.

    SpeechBrain's argparse parser accepts abbreviations, so a YAML override that
    is the start of a run option is taken as that option: ``--data /my/clips``
    became ``--data_parallel_backend`` and the path a stray value. With
    abbreviations off, it stays the YAML's ``data``. (SpeechBrain builds its
    parser inside ``parse_arguments``; it is patched for the call only.)

    Arguments
    ---------
    argv : list of str
        The command line.

    Returns
    -------
    tuple
        As ``speechbrain.parse_arguments``.

    Example
    -------
    >>> _, opts, overrides = parse_without_abbreviations(["h.yaml", "--data", "/x", "--seed", "1"])
    >>> overrides, opts.data_parallel_backend
    ('data: /x\\nseed: 1', False)
    """
    build = RunOptions._create_parser

    def exact_parser():
        parser = build()
        parser.allow_abbrev = False
        return parser

    with mock.patch.object(RunOptions, "_create_parser", staticmethod(exact_parser)):
        return sb.parse_arguments(argv)


@dataclasses.dataclass(frozen=True)
class RecipeOptions(RunOptions):
    """SpeechBrain's run options plus the recipes' own flags and their command line.

    SpeechBrain's ``Brain`` reads only its own options; the recipe runners read
    the rest.

    Arguments
    ---------
    fresh_run : bool
        ``--fresh_run True``: move an existing run in the output folder aside and start afresh.
    allow_zero_lr : bool
        ``--allow_zero_lr True``: run even when the learning rate stays 0 for the whole run.
    command_line : ssast_sb.brains.run_record.CommandLine
        What the recipe was asked, for the run records.
    """

    fresh_run: bool = False
    allow_zero_lr: bool = False
    command_line: Optional[CommandLine] = None

    @classmethod
    def extend(cls, run_opts, **flags):
        """``run_opts`` (SpeechBrain's) with the recipe flags ``flags``."""
        fields = {f.name: getattr(run_opts, f.name) for f in dataclasses.fields(run_opts)}
        return cls(**{**fields, **flags})


def take_bool_option(argv, name):
    """Removes ``--name [True|False]`` (or ``--name=X``) from ``argv``; returns its value.

    For the recipes' own flags, which are not YAML keys (HyperPyYAML refuses an
    override of a key its YAML lacks) and not SpeechBrain's.

    Arguments
    ---------
    argv : list of str
        The command line.
    name : str
        Option name without dashes.

    Returns
    -------
    tuple
        ``(argv without the option, bool)``; False when absent.

    Example
    -------
    >>> take_bool_option(["h.yaml", "--fresh_run", "True", "--seed", "1"], "fresh_run")
    (['h.yaml', '--seed', '1'], True)
    >>> take_bool_option(["h.yaml", "--fresh_run"], "fresh_run")
    (['h.yaml'], True)
    >>> take_bool_option(["h.yaml", "--fresh_run=false"], "fresh_run")
    (['h.yaml'], False)
    """
    flag, rest, value = f"--{name}", [], False
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        index += 1
        if item == flag:
            following = items[index] if index < len(items) else None
            if following is not None and following.lower() in BOOLEANS:
                value = BOOLEANS[following.lower()]
                index += 1
            else:
                value = True
        elif item.startswith(flag + "="):
            text = item.split("=", 1)[1]
            if text.lower() not in BOOLEANS:
                raise SystemExit(f"{flag} takes True or False, got {text!r}")
            value = BOOLEANS[text.lower()]
        else:
            rest.append(item)
    return rest, value


#: Spellings of the recipe flags' values.
BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def parse_recipe_arguments(argv, stage_settings=None):
    """A recipe's command line: the YAML, the run options and the YAML overrides; the rerun guard.

    Departures from SpeechBrain's command line: ``--ckpt_interval_minutes`` takes
    a float; a ``--debug`` run gets ``output_folder`` set to
    ``<output_folder>-debug`` (its manifests, checkpoints, logs and exports), so it
    never overwrites or appends to a real run's files; and two flags of ours,
    ``--fresh_run`` and ``--allow_zero_lr`` (:class:`RecipeOptions`). DDP starts
    here when asked. Then, before any work, every run already in the output
    folder must have been made with the settings asked for
    (:func:`ssast_sb.brains.run_record.guard_output_folder`), or the recipe stops
    with the differences.

    Arguments
    ---------
    argv : list of str
        ``hparams.yaml [--key value ...]`` plus SpeechBrain's run options.
    stage_settings : callable, optional
        See :class:`ssast_sb.brains.run_record.CommandLine`.

    Returns
    -------
    tuple
        ``(hparams_file, run_opts, overrides)``: ``run_opts`` a :class:`RecipeOptions`,
        ``overrides`` a dict.
    """
    argv, interval_minutes = take_float_option(list(argv), "ckpt_interval_minutes")
    argv, fresh_run = take_bool_option(argv, "fresh_run")
    argv, allow_zero_lr = take_bool_option(argv, "allow_zero_lr")
    hparams_file, run_opts, overrides = parse_without_abbreviations(argv)
    if interval_minutes is not None:
        run_opts = dataclasses.replace(
            run_opts,
            ckpt_interval_minutes=interval_minutes,
            overridden_args=run_opts.overridden_args | {"ckpt_interval_minutes"},
        )
    sb.utils.distributed.ddp_init_group(run_opts)
    if torch.distributed.is_initialized():
        atexit.register(close_process_group)
    if isinstance(overrides, str):
        overrides = YAML(typ="safe", pure=True).load(overrides) if overrides.strip() else {}
    overrides = overrides or {}
    check_placeholders(hparams_file, overrides)
    output_folder = resolved_yaml(hparams_file, overrides)["output_folder"]
    if run_opts["debug"]:
        folder = debug_output_folder(output_folder)
        logger.warning(
            "--debug: writing to %s, not to %s (a real run's folder)", folder, output_folder
        )
        overrides = {**overrides, "output_folder": folder}
        output_folder = folder
    command_line = CommandLine(hparams_file, overrides, str(output_folder), stage_settings)
    run_opts = RecipeOptions.extend(
        run_opts, fresh_run=fresh_run, allow_zero_lr=allow_zero_lr, command_line=command_line
    )
    guard_output_folder(command_line, run_opts, fresh_run)
    return hparams_file, run_opts, overrides


def start_experiment(hparams_file, run_opts, overrides, recipe_file=None):
    """Loads the YAML and makes the experiment folder, as SpeechBrain's recipes do.

    A checkpoint interval given on the command line replaces the YAML's other one
    (:func:`resolve_checkpoint_intervals`).

    Arguments
    ---------
    hparams_file : str
        The YAML.
    run_opts : speechbrain.utils.run_opts.RunOptions
        From :func:`parse_recipe_arguments`.
    overrides : dict
        YAML overrides.
    recipe_file : str, optional
        The recipe's ``train.py``, copied into the folder (see :func:`keep_recipe_copy`).

    Returns
    -------
    tuple
        ``(hparams, run_opts)``.
    """
    hparams = load_hparams(hparams_file, overrides)
    run_opts = resolve_checkpoint_intervals(run_opts, hparams)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    if recipe_file is not None:
        keep_recipe_copy(hparams["output_folder"], recipe_file)
    return hparams, run_opts


def keep_recipe_copy(folder, recipe_file):
    """Puts the recipe's script in the experiment folder in place of this module.

    SpeechBrain's ``create_experiment_directory`` copies the file of its caller,
    which for the recipes that start through :func:`load_recipe` is this module;
    its convention is a copy of the script that ran. On the main process only.

    Arguments
    ---------
    folder : str
        The experiment folder.
    recipe_file : str
        The recipe's script.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = shutil.copy(__file__, folder)
    >>> recipe = Path(tempfile.mkdtemp()) / "train.py"
    >>> _ = recipe.write_text("print('the recipe')")
    >>> keep_recipe_copy(folder, recipe)
    >>> sorted(path.name for path in folder.iterdir())
    ['train.py']
    """
    if not if_main_process():
        return
    module_copy = Path(folder) / Path(__file__).name
    if Path(recipe_file).resolve() != Path(__file__).resolve() and module_copy.is_file():
        if module_copy.read_bytes() == Path(__file__).read_bytes():
            module_copy.unlink()
    shutil.copy(recipe_file, folder)


def save_resolved_hparams(hparams_file, overrides, folder):
    """Rewrites ``<folder>/hyperparams.yaml`` with ``overrides`` resolved, as SpeechBrain writes it.

    For a recipe that decides values after the experiment folder exists (from the
    data), so that the saved YAML holds what the run used.

    Arguments
    ---------
    hparams_file : str
        The YAML.
    overrides : dict
        Every override of the run.
    folder : str
        The experiment folder.
    """
    if not if_main_process():
        return
    with open(hparams_file, encoding="utf-8") as stream:
        resolved = resolve_references(stream, overrides).getvalue()
    with atomic_open(Path(folder) / "hyperparams.yaml") as stream:
        stream.write(f"# Resolved from {os.path.abspath(hparams_file)} and the run's overrides\n")
        stream.write(resolved)


def load_recipe(argv, stage_settings=None):
    """What every recipe does first: parse, start DDP if asked, load the YAML, make the folder.

    See :func:`parse_recipe_arguments` (float checkpoint intervals, ``--debug``
    into its own folder) and :func:`start_experiment`.

    Arguments
    ---------
    argv : list of str
        ``hparams.yaml [--key value ...]`` plus SpeechBrain's run options.
    stage_settings : callable, optional
        See :class:`ssast_sb.brains.run_record.CommandLine`.

    Returns
    -------
    tuple
        ``(hparams, run_opts, hparams_file, overrides)``; ``overrides`` is a dict, to
        reload the YAML with :func:`load_hparams` (e.g. once per fold).
    """
    # The caller is the recipe: its script goes into the folder, as SpeechBrain's convention.
    recipe_file = getattr(inspect.getmodule(inspect.currentframe().f_back), "__file__", None)
    hparams_file, run_opts, overrides = parse_recipe_arguments(argv, stage_settings)
    hparams, run_opts = start_experiment(hparams_file, run_opts, overrides, recipe_file)
    return hparams, run_opts, hparams_file, overrides


def load_hparams(hparams_file, overrides, **more):
    """Loads a recipe YAML with the command line's overrides and more: fresh objects each call.

    Arguments
    ---------
    hparams_file : str
        The YAML.
    overrides : dict
        Command-line overrides.
    **more
        Further overrides (e.g. a fold's ``experiment_folder``), applied last.

    Returns
    -------
    dict

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "h.yaml")
    >>> _ = open(path, "w").write("a: 1\\nb: !ref <a>\\n")
    >>> load_hparams(path, {"a": 2}, b=5)
    {'a': 2, 'b': 5}
    """
    with open(hparams_file, encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, {**overrides, **more})


def apply_warmup(brain, multipliers=None):
    """The original staircase warm-up on a Brain's optimiser, if ``hparams.warmup``.

    Reads ``lr``, ``warmup_steps`` and ``warmup_interval`` from the Brain's hparams and
    its ``optimizer_step`` counter (see :func:`ssast_sb.schedules.staircase_warmup_lr`).
    """
    if not brain.hparams.warmup:
        return
    lr = staircase_warmup_lr(
        brain.optimizer_step,
        brain.hparams.lr,
        brain.hparams.warmup_steps,
        brain.hparams.warmup_interval,
    )
    if lr is not None:
        set_lr(brain.optimizer, lr, multipliers)
