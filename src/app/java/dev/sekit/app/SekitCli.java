package dev.sekit.app;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code sekit} command-line program: {@code train} trains a small eSE-VoVNet on
 * Fashion-MNIST; {@code finetune} fine-tunes a timm VoVNet checkpoint on labelled data;
 * {@code ablate} compares attention none / SE / eSE on the same budget; {@code predict}
 * classifies images with a timm checkpoint.
 */
@Command(name = "sekit", mixinStandardHelpOptions = true, version = "sekit 0.1.0",
    description = {"SE / eSE / OSA blocks on libtorch, from Java.",
        "Errors are one line (exit code 2: a value given is not acceptable; 1: the command failed); "
            + "--debug anywhere on the line adds the stack trace."},
    subcommands = {TrainCommand.class, FinetuneCommand.class, AblateCommand.class, PredictCommand.class,
        CommandLine.HelpCommand.class})
public final class SekitCli implements Runnable {
  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "name a command: train, finetune, ablate or predict");
  }

  /** The command line as given (the launcher of --nproc-per-node passes it on to its workers). */
  static String[] args = new String[0];

  /** Exit code of a command that failed (a file that cannot be written, a broken checkpoint). */
  static final int FAILED = 1;
  /** Exit code of a command line with a value that is not acceptable (picocli's, too). */
  static final int USAGE = 2;

  public static void main(String[] args) {
    // --debug, anywhere on the line, prints the stack trace of an error after its one line.
    boolean debug = java.util.Arrays.asList(args).contains("--debug");
    args = java.util.Arrays.stream(args).filter(a -> !a.equals("--debug")).toArray(String[]::new);
    SekitCli.args = args.clone();
    System.setProperty("java.awt.headless", "true");
    CommandLine cli = new CommandLine(new SekitCli());
    cli.setExecutionExceptionHandler((ex, cmd, parsed) -> {
      // One line that says what went wrong, never a stack trace (unless --debug): exit 2
      // for a value the user gave that is not acceptable, 1 for a failure.
      cmd.getErr().println("sekit: " + describe(ex));
      if (debug) {
        ex.printStackTrace(cmd.getErr());
      }
      return ex instanceof IllegalArgumentException ? USAGE : FAILED;
    });
    int code;
    try {
      code = cli.execute(args);
    } catch (RuntimeException | Error e) { // outside a command's own execution (help, parsing)
      System.err.println("sekit: " + describe(e));
      if (debug) {
        e.printStackTrace();
      }
      code = FAILED;
    }
    if (code != TrainCommand.INTERRUPTED) {
      System.exit(code);
    }
  }

  /** One line for an error: its message, or what its type says where the message is only a file name. */
  static String describe(Throwable e) {
    String m = e.getMessage();
    String what;
    if (e instanceof java.nio.file.FileSystemException f) {
      String file = f.getFile() == null ? "" : f.getFile() + (f.getOtherFile() == null ? "" : " -> " + f.getOtherFile());
      String reason = f.getReason() != null ? f.getReason()
          : e instanceof java.nio.file.NoSuchFileException ? "no such file or directory"
          : e instanceof java.nio.file.FileAlreadyExistsException ? "already exists (and is not a directory)"
          : e instanceof java.nio.file.NotDirectoryException ? "not a directory"
          : e instanceof java.nio.file.AccessDeniedException ? "permission denied"
          : e.getClass().getSimpleName();
      what = file.isEmpty() ? reason : file + ": " + reason;
    } else if (e instanceof java.io.UncheckedIOException u && u.getCause() != null && (m == null
        || m.equals(u.getCause().toString()))) {
      what = describe(u.getCause());
    } else if (e instanceof java.io.EOFException) {
      what = "the file ends early (truncated?)" + (m == null ? "" : ": " + m);
    } else if (e instanceof OutOfMemoryError) {
      what = "out of memory (" + m + "); use a smaller batch or size, or give Java more memory (-Xmx)";
    } else if (m == null || m.isBlank()) {
      Throwable c = e.getCause();
      what = c != null && c != e ? describe(c) : "internal error (" + e.getClass().getName()
          + "); run again with --debug for the stack trace";
    } else if (e instanceof IllegalArgumentException || e instanceof IllegalStateException
        || e instanceof java.io.IOException || e instanceof java.io.UncheckedIOException
        || e instanceof dev.sekit.SekitException) {
      what = m;
    } else {
      what = e.getClass().getSimpleName() + ": " + m;
    }
    what = what.replaceAll("\\s+", " ").strip();
    return what.length() <= 1000 ? what : what.substring(0, 997) + "...";
  }
}
