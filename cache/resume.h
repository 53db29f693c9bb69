/* resume.h — a task's resume state (TaskOpts.resume: checkpoints) around its attempts: kept
 * or removed before one (cache.h: cache_prepare_attempt), and its files' last whole copies.
 * Most published trainers save with a plain torch.save, which writes in place: stopped
 * while it writes (a Ctrl-C, a timeout, preemption, the OOM killer) it leaves a file cut
 * short that the next attempt cannot load, and every epoch before it would be lost. So
 * while an attempt runs, kiln copies each resume file it sees whole and settled to
 * .kiln/resume/TASK@I, and before an attempt continues, a resume file cut short is put back
 * from that copy. Only files are copied, and not a file the attempt replaces whole (a new
 * inode at each save: written to a temp name and renamed, never cut short). A directory
 * named in `resume` holds a checkpoint per save: before an attempt continues, each of its
 * entries holding a file cut short, and the latest checkpoint folder of a series lacking a
 * file the others hold, is removed (resume_folder.c), and the trainer continues from the
 * newest whole one. */
#ifndef KILN_RESUME_H
#define KILN_RESUME_H

#include <stdint.h>

#include "../base/graph.h"
#include "../base/util.h"
#include "cache.h"

/* Whether the file at path was cut short: empty, a zip archive (torch.save's format
 * since PyTorch 1.6, Lightning's .ckpt, numpy's .npz) without the end-of-archive record a
 * finished one ends with, a .safetensors file shorter than its header says, or a .json
 * file not ending with '}' or ']'. 0 for a whole one, a file of another format (which
 * kiln cannot judge), a directory, or no file. */
int resume_file_cut(const char *path);


/* Watching one attempt's resume files: a file whose stat has held for a second (and whose
 * modification is a second old) and that is whole is copied on a helper thread, then the
 * copy checked: whole, and the file unchanged while it was copied (else it is dropped and
 * taken at the next settled moment). The copy is written beside its place and renamed
 * there, so a copy is always a whole one. */
typedef struct ResumeWatch ResumeWatch;
/* NULL when t has no resume paths. */
ResumeWatch *resume_watch_new(Cache *c, const Task *t);
/* A look at the files (a stat each, at most twice a second); cheap to call often. */
void resume_watch_poll(ResumeWatch *w);
/* The attempt ended: a copy in flight is abandoned (the last whole one stays); frees w. */
void resume_watch_end(ResumeWatch *w);

/* Whether t's resume path i is cut short and has a whole copy to continue from; when so,
 * the copy's time (when the file was saved: "12:03:11", with the date if not today) in
 * saved_at (n bytes). */
int resume_cut_with_copy(Cache *c, const Task *t, int i, char *saved_at, size_t n);
/* Mends the resume directory dir before an attempt continues from it: each entry holding a
 * file cut short (two levels down: a zip archive without its end record, a .safetensors
 * file shorter than its header says, an empty file named as a checkpoint) is removed, and
 * so is the latest checkpoint folder of a numbered series (checkpoint-500) lacking a file
 * every other one of the series holds (a save stopped between its files), and so is one
 * lacking the file its framework writes last while holding earlier ones (a Hugging Face
 * checkpoint-N with training_args.bin but no trainer_state.json; .distcp files without
 * torch.distributed.checkpoint's .metadata): the first of a run has none to compare with. A sentence per
 * entry removed is appended to note ("; " between them). */
void resume_mend_folder(const char *dir, Buf *note);
/* Whether path, an output of a task that names no resume state, holds checkpoints a
 * trainer would continue from (a Hugging Face script finds the last checkpoint-N in its
 * output_dir): a file whose path names it one (checkpoint, ckpt, snapshot), or a folder
 * holding such entries (two levels down: lightning_logs/version_0/checkpoints) or whose path
 * so names it (checkpoints/run1) and not empty. The newest such entry's path
 * is appended to newest. The next attempt deletes it with the task's other outputs: the
 * task is told so (sched_job.c), that `resume` would keep it. */
int resume_holds_checkpoints(const char *path, Buf *newest);
/* Deletes t's copies: its resume state is gone or done with (a new key, --force, a
 * success, kiln clean). */
void resume_forget(Cache *c, const Task *t);

#endif
