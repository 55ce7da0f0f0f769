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
    description = "SE / eSE / OSA blocks on libtorch, from Java.",
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

  public static void main(String[] args) {
    SekitCli.args = args.clone();
    System.setProperty("java.awt.headless", "true");
    CommandLine cli = new CommandLine(new SekitCli());
    cli.setExecutionExceptionHandler((ex, cmd, parsed) -> {
      // Clear one-line errors for what a user can fix; stack traces for the rest.
      if (ex instanceof IllegalArgumentException || ex instanceof IllegalStateException
          || ex instanceof java.io.UncheckedIOException || ex instanceof dev.sekit.SekitException) {
        cmd.getErr().println("sekit: " + ex.getMessage());
        return 2;
      }
      throw ex;
    });
    int code = cli.execute(args);
    if (code != TrainCommand.INTERRUPTED) {
      System.exit(code);
    }
  }
}
