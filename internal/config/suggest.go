package config

import "strings"

// suggest returns the candidate that word is most likely a misspelling of,
// or "" if none is close. Differences in case, '-' and '_' alone always
// match (connect_timeout, connectTimeout → connect-timeout); otherwise up
// to two edits are allowed, fewer for short words.
func suggest(word string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		if squash(c) == squash(word) {
			return c
		}
		d := editDistance(word, c)
		if d <= maxEdits(c) && d < len(word) && d < len(c) && (bestDist < 0 || d < bestDist) {
			best, bestDist = c, d
		}
	}
	return best
}

func squash(s string) string {
	return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
}

func maxEdits(s string) int {
	return max(1, min(2, len(s)/3))
}

// editDistance counts the insertions, deletions, substitutions and
// transpositions of adjacent bytes needed to turn a into b.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
