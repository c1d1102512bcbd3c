# phases.awk — reads a kiln build log and prints its per-phase breakdown, the last
# "Phases: wall=1.532s context=0.000s …" line kiln logs (builder.PhaseTimes.String;
# `kiln build --phase-times` logs it at info level), as "key=seconds" pairs without the
# unit: "wall=1.532 context=0.000 … other=0.312". Prints nothing when the log has none.
# Used by scripts/bench.d/report.sh; cmd/kiln's TestPhaseLineBench runs it on kiln's
# own log output, so the two cannot drift apart.
{
  i = index($0, "Phases: ")
  if (i == 0) next
  rest = substr($0, i + 8)
  out = ""
  n = split(rest, f, /[ \t"]+/)
  for (j = 1; j <= n; j++) {
    if (f[j] !~ /^[a-z]+=[0-9.]+s$/) continue
    out = out (out == "" ? "" : " ") substr(f[j], 1, length(f[j]) - 1)
  }
  if (out != "") last = out
}
END { if (last != "") print last }
