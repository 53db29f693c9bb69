/* taskindex.c — open addressing with linear probing over the graph's own keys. */
#include "taskindex.h"

#include <string.h>

#include "graph.h"

static const char *slot_key(const TaskIndex *ix, Task *const *tasks, size_t i)
{
	const Task *t = tasks[ix->slots[i].id - 1];
	return ix->outputs ? t->outputs[ix->items[i]] : t->name;
}

static size_t find(const TaskIndex *ix, Task *const *tasks, const char *key, uint32_t h)
{
	size_t i = slots_home(h, ix->cap);
	while (ix->slots[i].id && (ix->slots[i].hash != h || strcmp(slot_key(ix, tasks, i), key) != 0))
		i = slots_next(i, ix->cap);
	return i;
}

static void grow(TaskIndex *ix, size_t cap)
{
	TaskIndexSlot *old = ix->slots;
	uint32_t *old_items = ix->items;
	size_t old_cap = ix->cap;
	ix->slots = big_alloc(cap * sizeof *ix->slots);
	memset(ix->slots, 0, cap * sizeof *ix->slots);
	ix->items = ix->outputs ? big_alloc(cap * sizeof *ix->items) : NULL;
	ix->cap = cap;
	for (size_t i = 0; i < old_cap; i++) /* keys are distinct: the first empty slot is theirs */
		if (old[i].id) {
			size_t j = slots_free_at(ix->slots, cap, old[i].hash);
			ix->slots[j] = old[i];
			if (ix->items)
				ix->items[j] = old_items[i];
		}
	big_free(old, old_cap * sizeof *old);
	big_free(old_items, old_cap * sizeof *old_items);
}

void tindex_reserve(TaskIndex *ix, size_t n)
{
	size_t cap = slots_capacity(ix->cap, n);
	if (cap != ix->cap)
		grow(ix, cap);
}

Task *tindex_put(TaskIndex *ix, Task *const *tasks, const char *key, uint64_t h, Task *t, int item)
{
	if (slots_full(ix->count, ix->cap))
		grow(ix, slots_capacity(0, ix->count * 2));
	size_t i = find(ix, tasks, key, (uint32_t)h);
	if (ix->slots[i].id)
		return tasks[ix->slots[i].id - 1];
	ix->slots[i] = (TaskIndexSlot){(uint32_t)h, (uint32_t)t->index + 1};
	if (ix->items)
		ix->items[i] = (uint32_t)item;
	ix->count++;
	return NULL;
}

Task *tindex_get(const TaskIndex *ix, Task *const *tasks, const char *key)
{
	if (!ix->count)
		return NULL;
	size_t i = find(ix, tasks, key, (uint32_t)hash_str(key));
	return ix->slots[i].id ? tasks[ix->slots[i].id - 1] : NULL;
}

void tindex_prefetch(const TaskIndex *ix, uint64_t h)
{
	if (ix->cap)
		__builtin_prefetch(&ix->slots[slots_home((uint32_t)h, ix->cap)]);
}

void tindex_free(TaskIndex *ix)
{
	big_free(ix->slots, ix->cap * sizeof *ix->slots);
	big_free(ix->items, ix->cap * sizeof *ix->items);
	int outputs = ix->outputs;
	memset(ix, 0, sizeof *ix);
	ix->outputs = outputs;
}
